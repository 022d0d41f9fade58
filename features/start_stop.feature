Feature: Signed transactions: start and stop
  EvseManager starts a transaction with the session's UUID and the OCMF identification data, and stops
  it with the same id. The meter signs a record holding the begin and end readings (seeds 001, 004).

  Background:
    Given the charger has booted

  @R-START @R-STOP @R-INTEGRITY @ground_truth @load_control @transactions
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

  @R-START @R-STOP @R-INTEGRITY @transactions
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

  @R-STOP @transactions
  Scenario: A stop of a transaction id the meter never saw is an error
    When a stop is requested for an unknown transaction id
    Then the stop is answered "UNEXPECTED_ERROR" with an error message

  @R-START @R-STOP @plain_meter
  Scenario: A meter without signed transactions answers start and stop NOT_SUPPORTED
    Given an identification of type "ISO14443"
    When a session starts
    Then the start is answered "NOT_SUPPORTED" with an error message
    When a stop is requested for an unknown transaction id
    Then the stop is answered "NOT_SUPPORTED" with an error message

  @R-START @R-STOP @R-INTEGRITY @ground_truth @stop_time_limits @transactions
  Scenario: A meter with a minimum transaction duration gives the stop times and ends no earlier
    Given an identification of type "ISO14443"
    When a session starts
    Then the start is answered "OK"
    And the start answer gives a minimum and a maximum stop time
    When the session is stopped
    Then the stop is answered "OK" with a signed meter value
    And the transaction ended no earlier than the minimum stop time
    And the signed meter value verifies against the meter's public key
    And its begin and end energy agree with the meter's ground truth

  @R-START @R-STOP @R-INTEGRITY @ground_truth @separate_begin_end @transactions
  Scenario: A meter that signs begin and end apart gives both records, with consecutive pagination
    Given the EV draws 22000 W
    And an identification of type "ISO14443"
    When a session starts
    Then the start is answered "OK" with a signed begin record
    When the meter counts 10 Wh more
    And the session is stopped
    Then the stop is answered "OK" with a signed meter value
    And the stop answer carries the begin record of the start
    And the signed meter value verifies against the meter's public key
    And its begin and end energy agree with the meter's ground truth
