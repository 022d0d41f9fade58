"""set_device_state: the EM580's fault bits through the control socket; a clear error elsewhere."""

import tempfile

import pytest

from simulator import ControlError, MeterSimProcess


def test_set_device_state_is_refused_by_a_model_without_the_register():
    with MeterSimProcess(tempfile.mkdtemp(prefix="ds-"), model="reference") as meter:
        with pytest.raises(ControlError, match="model 'reference' has no device state register"):
            meter.control.set_device_state(1)


def test_set_device_state_checks_its_argument():
    with MeterSimProcess(tempfile.mkdtemp(prefix="ds-"), model="carlo-gavazzi-em580") as meter:
        with pytest.raises(ControlError, match=r"bits must be an integer 0\.\.0xFFFF"):
            meter.control.set_device_state(0x10000)
