"""The SMS side path: Twilio's SMS webhooks, and the agent's reply from its LLM with the
conversation's last 24 hours."""
