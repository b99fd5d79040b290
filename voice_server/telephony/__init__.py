"""Twilio's edge for calls: the voice and status webhooks, and the media-stream WebSocket where
every error of a call is mapped. The live call itself is `voice_server.call`."""
