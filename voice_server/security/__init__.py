"""Who may talk to us: Twilio webhook signatures, media-stream tokens, the one signed-token
primitive every token kind uses, and the key that seals auth tokens at rest. Below every edge."""
