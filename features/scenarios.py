"""The official scenarios: every .feature file shipped beside this module, bound to the official steps
the plugin registers. The plugin collects this module by name, so the suite runs from an installed
package as from the source tree."""

from pytest_bdd import scenarios

from meter_hil_suite import SUITE_DIR

scenarios(str(SUITE_DIR))
