Feature: Power failures
  After a power failure of the whole system EvseManager calls stop_transaction(last id), which must
  return the signed value of the interrupted transaction and close it, then stop_transaction(""),
  which clears every pending transaction in the meter (seed 004).

  Background:
    Given the charger has booted

  @R-RECOVER @R-INTEGRITY @power_control @ground_truth @transactions
  Scenario: The meter loses power in the middle of a session
    Given EvseManager does not stop sessions on powermeter errors
    And an identification of type "ISO14443"
    When a session starts
    Then the start is answered "OK"
    When the meter loses power
    Then the driver raises "CommunicationFault"
    When the meter's power returns
    Then the driver clears "CommunicationFault"
    When the session is stopped
    Then the stop is answered "OK" with a signed meter value
    And the signed meter value verifies against the meter's public key
    And its begin and end energy agree with the meter's ground truth

  @R-RECOVER @R-INTEGRITY @power_control @ground_truth @load_control @transactions
  Scenario: The whole system loses power; at boot stop(last id) returns the signed value
    Given the EV draws 22000 W
    And an identification of type "ISO14443"
    When a session starts
    Then the start is answered "OK"
    When the meter counts 10 Wh more
    And the whole system loses power
    And the whole system's power returns
    And the charger boots with the last transaction id
    Then stop of the last transaction id is answered "OK" with a signed meter value
    And the signed meter value verifies against the meter's public key
    And the signed meter value holds the identification data sent
    And its begin and end energy agree with the meter's ground truth
    And stop("") is answered "OK"
    And the meter has no transaction open

  @R-RECOVER @R-INTEGRITY @power_control @ground_truth @transactions
  Scenario: The whole system loses power and the last id is lost; stop("") clears what is pending
    Given an identification of type "ISO14443"
    When a session starts
    Then the start is answered "OK"
    When the whole system loses power
    And the whole system's power returns
    And the charger boots without a last transaction id
    Then stop("") is answered "OK"
    And the meter has no transaction open
    And the meter signed exactly one record for the transaction

  @R-RECOVER @ground_truth @transactions
  Scenario: stop("") with nothing pending
    When the charger boots without a last transaction id
    Then stop("") is answered "OK"
    And the meter has no transaction open
