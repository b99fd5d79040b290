"""Fixed things the agent says when it cannot answer otherwise.

They live here, not in the session, because the telephony edge renders `FALLBACK_TEXT` while the
phone rings, so a failing text-to-speech is still answered with speech.
"""

FALLBACK_TEXT = "Sorry, I'm having trouble answering right now. Could you say that again?"
NOT_HEARD_TEXT = "Sorry, I didn't catch that. Could you say it again?"
STT_GOODBYE_TEXT = "Sorry, I can't hear you properly. Please call again later. Goodbye!"
