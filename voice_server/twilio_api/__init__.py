"""What we hand Twilio, from any edge: TwiML text it can parse, and texts sent through its REST
API with each number's own credentials."""
