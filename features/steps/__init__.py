"""The official steps, one module a concern. The plugin registers them all (so a vendor's feature
files can use every published step); a vendor imports them to build its own steps on them."""

STEP_MODULES = (
    "meter_hil_suite.steps.context",
    "meter_hil_suite.steps.session",
    "meter_hil_suite.steps.faults",
    "meter_hil_suite.steps.signed",
    "meter_hil_suite.steps.meter",
    "meter_hil_suite.steps.readings",
    "meter_hil_suite.steps.ocpp",
)
