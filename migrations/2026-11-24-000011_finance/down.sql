DROP TABLE stripe_events;
DROP TABLE stripe_payment_intents;
DROP TABLE idempotency_keys;
DROP TABLE credit_notes;
DROP TABLE payments;
DROP TABLE invoices;
DROP TABLE document_sequences;
DROP TABLE finance_settings;
