"""Tools that play Twilio against a running server: the caller simulator and its phone line,
caller scripts, the scripted conversation set, the demo, and the Twilio stand-in that places
outbound calls (its REST API and phone network). The server never imports them."""
