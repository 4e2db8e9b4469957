-- +goose Up
-- Customers' replies (Twilio inbound SMS, SendGrid Inbound Parse), recorded before the
-- provider gets its 2xx and before any run hears of them. event_id is
-- reply:<provider>:<provider message id> (Twilio's MessageSid, the email's Message-ID
-- hashed), so a provider's retry is a duplicate. The sender's address is never stored: it
-- only finds customer_id. text is masked (no email addresses, phone numbers or long digit
-- runs) and bounded.
CREATE TABLE inbound_replies (
    event_id      text PRIMARY KEY,
    provider      text        NOT NULL CHECK (provider IN ('twilio', 'sendgrid')),
    channel       text        NOT NULL CHECK (channel IN ('email', 'sms')),
    customer_id   text,                  -- NULL: no profile has the sender's address
    keyword       text        NOT NULL DEFAULT '' CHECK (keyword IN ('', 'stop', 'start', 'help')),
    text          text        NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    delivered_at  timestamptz,           -- delivered to every open run of the customer (or none to deliver to)
    delivery_note text        NOT NULL DEFAULT ''
);
CREATE INDEX inbound_replies_undelivered ON inbound_replies (received_at) WHERE delivered_at IS NULL;
CREATE INDEX inbound_replies_customer ON inbound_replies (customer_id, received_at);
-- Finding the customer by the sender's phone (E.164) or email address.
CREATE INDEX customers_phone ON customers (phone);
CREATE INDEX customers_email_lower ON customers (lower(email));
-- STOP and START replies are consent statements (beside 00011's providers' opt-outs).
ALTER TABLE consent_ledger DROP CONSTRAINT consent_ledger_source_check;
ALTER TABLE consent_ledger ADD CONSTRAINT consent_ledger_source_check
    CHECK (source IN ('billing_event', 'snapshot', 'import', 'migration', 'sendgrid', 'twilio', 'reply'));

-- +goose Down
DELETE FROM consent_ledger WHERE source = 'reply';
ALTER TABLE consent_ledger DROP CONSTRAINT consent_ledger_source_check;
ALTER TABLE consent_ledger ADD CONSTRAINT consent_ledger_source_check
    CHECK (source IN ('billing_event', 'snapshot', 'import', 'migration', 'sendgrid', 'twilio'));
DROP INDEX customers_email_lower;
DROP INDEX customers_phone;
DROP TABLE inbound_replies;
