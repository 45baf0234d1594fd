"""The supervisor: which consumers read which ring, and everything around them.

It wires push, trigger and flows consumers to the capture layer's rings (engine.py, with
bindings.py, live_captures.py and engine_threads.py), runs them over a file instead (replay.py),
reloads and hands targets over, keeps their counters across reloads (target_counters.py), serves
status and metrics (status.py, metrics.py), sets up logging (obs.py) and owns the one stop path
(daemon.py). Consumers never import it; it imports them.
"""
