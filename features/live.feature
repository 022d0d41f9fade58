Feature: The live Powermeter dataset
  The driver publishes the Powermeter dataset periodically: timestamp and energy always, per-phase
  values, phase_seq_error for a counter-clockwise rotation, the meter id (seeds 000, 001).

  Background:
    Given the charger has booted

  @R-LIVE @load_control
  Scenario: Readings arrive at the configured interval and energy never goes backwards
    Given the EV draws 22000 W
    When the driver has published 12 readings
    Then the readings arrived at the configured interval
    And every reading has a timestamp, energy and the meter id
    And the imported energy never went backwards
    And the imported energy grew
    And the readings show power drawn on the phases

  @R-LIVE @R-INTEGRITY @load_control @ground_truth
  Scenario: The published values are the meter's, correctly scaled
    Given the EV draws 11000 W
    When the driver has published 3 readings
    Then the last reading agrees with the meter's ground truth

  @R-LIVE @phase_control @phase_sequence
  Scenario: A counter-clockwise phase rotation sets phase_seq_error
    When the phase order becomes "ccw"
    Then a reading shows phase_seq_error true
    When the phase order becomes "cw"
    Then a reading shows phase_seq_error false

  @R-LIVE @R-INTEGRITY @ground_truth @transactions
  Scenario: The driver reports the meter's own OCMF public key
    Given an identification of type "ISO15693"
    When a session starts
    Then the start is answered "OK"
    When the session is stopped
    Then the record the meter stored verifies against the driver's OCMF public key
