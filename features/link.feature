Feature: Communication loss between driver and meter
  If the link between driver and meter is lost and comes back during a session, the session still gets
  its signed meter value at the end (seed 004). Meter failures are raised as CommunicationFault and
  cleared when the meter is back.

  Background:
    Given the charger has booted

  @R-RECONNECT @R-INTEGRITY @link_control @ground_truth @load_control @transactions
  Scenario: The link drops in the middle of a session
    Given EvseManager does not stop sessions on powermeter errors
    And the EV draws 22000 W
    And an identification of type "ISO14443"
    When a session starts
    Then the start is answered "OK"
    When the meter counts 5 Wh more
    And the link is cut
    Then the driver raises "CommunicationFault"
    When the meter counts 5 Wh more
    And the link is restored
    Then the driver clears "CommunicationFault"
    When the session is stopped
    Then the stop is answered "OK" with a signed meter value
    And the signed meter value verifies against the meter's public key
    And its begin and end energy agree with the meter's ground truth

  @R-RECONNECT @R-INTEGRITY @link_control @ground_truth @transactions
  Scenario: The link drops during the stop itself, after the meter got the command
    Given EvseManager does not stop sessions on powermeter errors
    And an identification of type "ISO14443"
    When a session starts
    Then the start is answered "OK"
    When the meter takes a stop of the transaction
    And the link is cut as soon as the stop command reaches the meter
    And the session is stopped
    Then the link was cut after the stop command reached the meter
    And the stop is not answered "OK"
    And the meter has no transaction open
    When the link is restored
    Then the driver clears "CommunicationFault"
    When EvseManager repeats the stop
    Then the stop is answered "OK" with a signed meter value
    And the signed meter value verifies against the meter's public key
    And its begin and end energy agree with the meter's ground truth
    And the meter signed exactly one record for the transaction

  @R-RECONNECT @R-INTEGRITY @link_control @ground_truth @load_control @transactions
  Scenario: Garbled frames on a noisy link in the middle of a session
    Given EvseManager does not stop sessions on powermeter errors
    And the EV draws 22000 W
    And an identification of type "EMAID"
    When a session starts
    Then the start is answered "OK"
    When the link corrupts 5 in 1000 bytes
    And the driver has published 4 readings
    And the link is clean again
    Then the link corrupted some bytes
    And the imported energy never went backwards
    When the session is stopped
    Then the stop is answered "OK" with a signed meter value
    And the signed meter value verifies against the meter's public key
    And its begin and end energy agree with the meter's ground truth

  @R-FAULT @link_control
  Scenario: CommunicationFault is raised when the meter stops answering and cleared when it is back
    When the link is cut
    Then the driver raises "CommunicationFault"
    When the link is restored
    Then the driver clears "CommunicationFault"
