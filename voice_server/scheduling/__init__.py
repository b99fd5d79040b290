"""The scheduled-call worker: finds due calls, claims each once, and places them."""
