"""Exercises (!övning) and test alarms (!larmprov) for the preparedness coordinators.

An exercise runs the real chain of the healthcare region, marked on every channel, in its own id
series; it can be started now, planned (``S-4``, a due row that survives restarts), reminded to
the coordinators, ended (all acknowledged, its deadline, ``!avlarma``, ``!övning avsluta``, or a
live incident, which always wins) and reported with the time to acknowledge per party and its
trend against the previous exercises.
"""
