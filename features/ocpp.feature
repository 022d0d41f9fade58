Feature: OCPP mapping of readings and signed values
  A transaction's readings and signed values map onto OCPP 1.6 MeterValues.req and OCPP 2.0.1
  MeterValuesRequest / SignedMeterValue payloads that are valid against the official schemas.

  Background:
    Given the charger has booted

  @R-OCPP @transactions
  Scenario: A transaction's signed values and readings make schema-valid OCPP payloads
    Given an identification of type "ISO14443"
    When a session starts
    Then the start is answered "OK"
    When the driver has published 2 readings
    And the session is stopped
    Then the stop is answered "OK" with a signed meter value
    And the driver's signed meter value is as EVerest carries it
    And the OCPP 1.6 MeterValues.req for the transaction is valid against its schema
    And the OCPP 2.0.1 MeterValuesRequest for the transaction is valid against its schema
    And the OCPP payloads carry the signed meter value unchanged
