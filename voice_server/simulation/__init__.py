"""Tools that play Twilio against a running server: the caller simulator and its phone line,
caller scripts, the scripted conversation set, and the demo. The server never imports them."""
