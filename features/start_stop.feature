Feature: Signed transactions: start and stop
  EvseManager starts a transaction with the session's UUID and the OCMF identification data, and stops
  it with the same id. The meter signs a record holding the begin and end readings (seeds 001, 004).

  Background:
    Given the charger has booted

  @R-START @R-STOP @R-INTEGRITY @ground_truth @load_control
  Scenario: A started and stopped transaction yields a verifying OCMF record
    Given the EV draws 22000 W
    And an identification of type "ISO14443"
    When a session starts
    Then the start is answered "OK"
    And the meter has the transaction open
    When the meter counts 10 Wh more
    And the session is stopped
    Then the stop is answered "OK" with a signed meter value
    And the signed meter value verifies against the meter's public key
    And the signed meter value holds the identification data sent
    And its begin and end energy agree with the meter's ground truth
    And the meter has no transaction open

  @R-START @R-STOP @R-INTEGRITY
  Scenario: An EMAID identification with a tariff text goes into the signed record
    Given an identification of type "EMAID" with a tariff text
    When a session starts
    Then the start is answered "OK"
    When the session is stopped
    Then the stop is answered "OK" with a signed meter value
    And the signed meter value verifies against the meter's public key
    And the signed meter value holds the identification data sent

  @R-START @ground_truth
  Scenario Outline: A start with an invalid request is refused, naming the field
    Given an identification of type "ISO14443"
    When a session starts with <field> set to "<value>"
    Then the start is refused naming "<field>"
    And the meter has no transaction open

    Examples:
      | field               | value                                             |
      | transaction_id      |                                                   |
      | identification_data | 0123456789012345678901234567890123456789ABCDEF    |
      | evse_id             | DE*ÄBC*E1*1                                       |

  @R-STOP
  Scenario: A stop of a transaction id the meter never saw is an error
    When a stop is requested for an unknown transaction id
    Then the stop is answered "UNEXPECTED_ERROR" with an error message
