#!/usr/bin/env node
// Send one event to `dbnotify serve` the way DBackup does, then follow it until every
// channel and recipient has an outcome. Node 20 or later; plain fetch, no dependencies.
//
//   DBNOTIFY_URL=http://127.0.0.1:8025 DBNOTIFY_TOKEN=... \
//     node dbackup-client.mjs [EVENT_TYPE] [DATA_JSON]
//
// EVENT_TYPE defaults to backup_failure and DATA_JSON to a sample job's data. The token
// needs the "send" scope to send, and "read" to follow the outcome (without it, the
// script stops after the event is accepted). Exit status: 0 every target delivered or
// skipped, 1 a delivery failed or the wait ran out, 2 the event was refused (problem
// JSON, printed with each field's fix), 3 the service could not be reached.

import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";

const BASE = (process.env.DBNOTIFY_URL ?? "http://127.0.0.1:8025").replace(/\/+$/, "");
const TOKEN = process.env.DBNOTIFY_TOKEN;
const WAIT_SECONDS = Number(process.env.DBNOTIFY_WAIT ?? 60);
const SEND_ATTEMPTS = 5;
const LONGEST_PAUSE = 30; // seconds: a Retry-After longer than this is shortened

const FINAL = new Set(["delivered", "failed", "skipped"]); // queued, pending: still moving

function sampleData() {
  return {
    job_name: "nightly-postgres",
    source_name: "pg-main.db.internal",
    error: "pg_dump: error: connection to server failed: timeout expired",
  };
}

/** Seconds to wait as a Retry-After header says (seconds or an HTTP date); else `fallback`. */
function retryAfter(response, fallback) {
  const value = response.headers.get("retry-after");
  if (value === null) return fallback;
  const seconds = /^\d+$/.test(value.trim())
    ? Number(value)
    : (Date.parse(value) - Date.now()) / 1000;
  return Number.isFinite(seconds) ? Math.min(Math.max(seconds, 0), LONGEST_PAUSE) : fallback;
}

/** A problem JSON reply (RFC 9457) as lines: the detail, then each field, value and fix. */
function describeProblem(problem) {
  const lines = [`${problem.status} ${problem.title}: ${problem.detail}`];
  for (const error of problem.errors ?? []) {
    const value = error.value === null || error.value === undefined ? "" : ` (given: ${error.value})`;
    lines.push(`  ${error.field ?? "body"}${value}: ${error.fix}`);
  }
  return lines.join("\n");
}

async function problemOf(response) {
  const type = response.headers.get("content-type") ?? "";
  if (type.includes("json")) {
    try {
      return await response.json();
    } catch {
      // fall through: a reply that is not the JSON it says
    }
  }
  return { status: response.status, title: response.statusText, detail: "(no problem JSON)" };
}

function headers(extra = {}) {
  return { Authorization: `Bearer ${TOKEN}`, Accept: "application/json", ...extra };
}

/**
 * POST /v1/events. The Idempotency-Key is made once for the event and sent again on every
 * retry: if an earlier attempt did reach the service, the repeat gets the first answer and
 * nothing is sent twice.
 */
async function sendEvent(event) {
  const key = randomUUID();
  for (let attempt = 1; ; attempt++) {
    let response;
    try {
      response = await fetch(`${BASE}/v1/events`, {
        method: "POST",
        headers: headers({ "Content-Type": "application/json", "Idempotency-Key": key }),
        body: JSON.stringify(event),
      });
    } catch (error) {
      if (attempt >= SEND_ATTEMPTS) {
        console.error(`dbnotify unreachable at ${BASE}: ${error.cause?.message ?? error.message}`);
        process.exit(3);
      }
      const pause = Math.min(2 ** attempt, LONGEST_PAUSE);
      console.log(`dbnotify unreachable (${error.cause?.code ?? error.message}); retrying in ${pause} s`);
      await sleep(pause * 1000);
      continue;
    }
    if (response.status === 202 || response.status === 200) {
      return { key, accepted: await response.json() };
    }
    const problem = await problemOf(response);
    // 503: the outbox cannot take it now; 409: an earlier attempt with this key is still
    // being answered. Both are worth the same request again, later.
    if ((response.status === 503 || response.status === 409) && attempt < SEND_ATTEMPTS) {
      const pause = retryAfter(response, 2 ** attempt);
      console.log(`not now (${problem.detail}); retrying in ${pause} s with the same Idempotency-Key`);
      await sleep(pause * 1000);
      continue;
    }
    console.error(`event refused:\n${describeProblem(problem)}`);
    process.exit(2);
  }
}

/** Each target's outcome: "channel: status" and, indented, each recipient's. */
function describeOutcome(notification) {
  const lines = [];
  if (notification.reason) lines.push(`${notification.status}: ${notification.reason}`);
  for (const target of notification.targets ?? []) {
    const what = target.target === "user" ? `${target.channel} (user copy)` : target.channel;
    lines.push(`${what}: ${target.status}`);
    for (const r of target.recipients ?? []) {
      const details = [r.kind, r.reply ?? r.reason, r.hint]
        .filter((x) => x !== null && x !== undefined && x !== "")
        .join("; ");
      lines.push(`  ${r.recipient}: ${r.status}${details ? ` (${details})` : ""}`);
    }
  }
  return lines.join("\n");
}

/** Whether every recipient has its outcome: delivered, failed (for good) or skipped. */
function settled(notification) {
  return (notification.targets ?? []).every((t) =>
    (t.recipients ?? []).every((r) => FINAL.has(r.status)),
  );
}

/** GET /v1/notifications/{id} until every target has an outcome, or the wait runs out. */
async function follow(id) {
  const deadline = Date.now() + WAIT_SECONDS * 1000;
  let pause = 0.2;
  let last = null;
  while (Date.now() < deadline) {
    const response = await fetch(`${BASE}/v1/notifications/${encodeURIComponent(id)}`, {
      headers: headers(),
    });
    if (response.status === 403) {
      console.log("(this token may not read notifications: give it the 'read' scope to follow them)");
      return null;
    }
    if (response.ok) {
      last = await response.json();
      if (settled(last)) return last;
    } else if (response.status !== 404 && response.status !== 503) {
      console.error(`could not read notification ${id}:\n${describeProblem(await problemOf(response))}`);
      process.exit(1);
    }
    await sleep(retryAfter(response, pause) * 1000);
    pause = Math.min(pause * 2, 2);
  }
  console.log(`still pending after ${WAIT_SECONDS} s:`);
  if (last) console.log(describeOutcome(last));
  process.exit(1);
}

async function main() {
  if (!TOKEN) {
    console.error("set DBNOTIFY_TOKEN to a token from [serve.tokens] (scopes send, read)");
    process.exit(2);
  }
  const [type = "backup_failure", data] = process.argv.slice(2);
  const event = { type, data: data ? JSON.parse(data) : sampleData() };
  const { key, accepted } = await sendEvent(event);
  const targets = (accepted.targets ?? []).map((t) =>
    t.target === "user" ? `${t.channel} (user copy)` : t.channel,
  );
  console.log(`accepted: notification ${accepted.id} (Idempotency-Key ${key})`);
  console.log(`targets: ${targets.join(", ") || `none (${accepted.reason ?? accepted.status})`}`);
  const outcome = settled(accepted) ? accepted : await follow(accepted.id);
  if (outcome === null) return;
  console.log(describeOutcome(outcome));
  const failed = (outcome.targets ?? []).some((t) => t.status === "failed");
  process.exit(failed ? 1 : 0);
}

await main();
