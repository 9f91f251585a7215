// The console's only script: Test a channel's form without leaving the page, so that
// the secrets typed in it are still there for Save (the server never sends them back).
// Without it, Test reloads the page, and the form says to type the secrets again.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("channel-form");
  const button = document.getElementById("test-button");
  const out = document.getElementById("test-report");
  if (!form || !button || !out) return;
  button.addEventListener("click", async (event) => {
    event.preventDefault();
    if (!form.reportValidity()) return;
    const body = new URLSearchParams(new FormData(form));
    body.set("action", "test");
    button.disabled = true;
    const label = button.textContent;
    button.textContent = "Testing…";
    out.innerHTML = '<p class="muted">Testing: resolve, connect, TLS, EHLO, AUTH, send…</p>';
    try {
      const reply = await fetch(form.getAttribute("action"), {
        method: "POST",
        body,
        credentials: "same-origin",
        headers: { "X-Console-Fragment": "1" },
      });
      if (reply.redirected) {  // the session ended: to the sign-in page
        window.location.assign(reply.url);
        return;
      }
      out.innerHTML = await reply.text();
    } catch (error) {
      out.textContent = "The test could not reach the server: " + error;
    } finally {
      button.disabled = false;
      button.textContent = label;
    }
  });
});
