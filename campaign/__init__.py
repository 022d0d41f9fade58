"""The fault campaign: seeded schedules of charging sessions with faults fired at exact points of the
Modbus traffic, on a rig file's rig, every promise checked against the simulated meter's ground truth.

Beside `rigs` (whose rig files, driver factory and EvseManager it uses) and like it the only kind of
package that knows both the simulator and the driver. `python -m campaign --help`; docs/reliability.md.
"""
