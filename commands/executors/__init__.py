"""One executor per command: reads the call, asks the domain, returns an Outcome."""
