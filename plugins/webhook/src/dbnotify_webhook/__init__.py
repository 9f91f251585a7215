"""Generic webhook channel: any HTTP endpoint, payload template of your own."""
