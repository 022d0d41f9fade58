Feature: EvseManager stops the session on meter failures
  With fail_on_powermeter_errors set, a meter failure raised as CommunicationFault during a session
  stops it; the signed value is fetched once the meter answers again (seed 004).

  Background:
    Given the charger has booted

  @R-FAULT @R-INTEGRITY @power_control @ground_truth @transactions
  Scenario: fail_on_powermeter_errors stops the session when the meter fails
    Given EvseManager stops sessions on powermeter errors
    And an identification of type "ISO14443"
    When a session starts
    Then the start is answered "OK"
    When the meter loses power
    Then the driver raises "CommunicationFault"
    And EvseManager has stopped the session because of the powermeter error
    When the meter's power returns
    Then the driver clears "CommunicationFault"
    And the stopped session receives its signed meter value
    And the signed meter value verifies against the meter's public key
    And its begin and end energy agree with the meter's ground truth
    And the meter has no transaction open
