"""The four phases of a run, a module each (direct, envoy, memory, tail):
each starts its processes, sends the load, checks every answer was what it
should be, and returns its part of results.json."""
