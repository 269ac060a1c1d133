-- A contact's addresses, numbers and SMS opt-outs kept on its own row, so that a page of
-- contacts is read from `contacts` alone (the per-row lookups cost ten times the page).
-- `contact_emails`, `contact_phones` and `sms_opt_outs` stay the truth and the lookup
-- indexes; statement triggers keep the arrays in step whatever writes those tables.
ALTER TABLE contacts
    ADD COLUMN emails text[] NOT NULL DEFAULT '{}',
    ADD COLUMN phones text[] NOT NULL DEFAULT '{}',
    ADD COLUMN sms_opted_out text[] NOT NULL DEFAULT '{}';

-- Recomputes the arrays of the given contacts. The rows are locked first, in a statement
-- of their own: a concurrent writer of the same contact then commits before the second
-- statement takes its snapshot, so neither transaction's rows go missing from the arrays.
CREATE FUNCTION cp_refresh_contact_arrays(firm uuid, ids uuid[])
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM contacts c WHERE c.firm_id = firm AND c.id = ANY(ids) ORDER BY c.id FOR UPDATE;
    UPDATE contacts c SET
        emails = ARRAY(SELECT e.email FROM contact_emails e
                        WHERE e.firm_id = c.firm_id AND e.contact_id = c.id ORDER BY e.position, e.email),
        phones = ARRAY(SELECT p.phone FROM contact_phones p
                        WHERE p.firm_id = c.firm_id AND p.contact_id = c.id ORDER BY p.position, p.phone),
        sms_opted_out = ARRAY(SELECT o.phone_number FROM sms_opt_outs o
                                JOIN contact_phones p ON p.firm_id = o.firm_id AND p.phone = o.phone_number
                               WHERE p.firm_id = c.firm_id AND p.contact_id = c.id ORDER BY p.position, p.phone)
     WHERE c.firm_id = firm AND c.id = ANY(ids);
END
$$;

CREATE FUNCTION cp_contact_arrays_from_rows()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    touched record;
BEGIN
    FOR touched IN
        SELECT t.firm_id, array_agg(DISTINCT t.contact_id) AS ids
          FROM (SELECT firm_id, contact_id FROM changed_new
                UNION ALL SELECT firm_id, contact_id FROM changed_old) t
         GROUP BY t.firm_id
    LOOP
        PERFORM cp_refresh_contact_arrays(touched.firm_id, touched.ids);
    END LOOP;
    RETURN NULL;
END
$$;

-- Transition tables name one event each, so insert and delete get triggers of their own,
-- reading an empty stand-in for the side they lack.
CREATE FUNCTION cp_contact_arrays_from_inserted()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    touched record;
BEGIN
    FOR touched IN SELECT firm_id, array_agg(DISTINCT contact_id) AS ids FROM changed_new GROUP BY firm_id LOOP
        PERFORM cp_refresh_contact_arrays(touched.firm_id, touched.ids);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE FUNCTION cp_contact_arrays_from_deleted()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    touched record;
BEGIN
    FOR touched IN SELECT firm_id, array_agg(DISTINCT contact_id) AS ids FROM changed_old GROUP BY firm_id LOOP
        PERFORM cp_refresh_contact_arrays(touched.firm_id, touched.ids);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER contact_emails_inserted AFTER INSERT ON contact_emails
    REFERENCING NEW TABLE AS changed_new
    FOR EACH STATEMENT EXECUTE FUNCTION cp_contact_arrays_from_inserted();
CREATE TRIGGER contact_emails_updated AFTER UPDATE ON contact_emails
    REFERENCING NEW TABLE AS changed_new OLD TABLE AS changed_old
    FOR EACH STATEMENT EXECUTE FUNCTION cp_contact_arrays_from_rows();
CREATE TRIGGER contact_emails_deleted AFTER DELETE ON contact_emails
    REFERENCING OLD TABLE AS changed_old
    FOR EACH STATEMENT EXECUTE FUNCTION cp_contact_arrays_from_deleted();

CREATE TRIGGER contact_phones_inserted AFTER INSERT ON contact_phones
    REFERENCING NEW TABLE AS changed_new
    FOR EACH STATEMENT EXECUTE FUNCTION cp_contact_arrays_from_inserted();
CREATE TRIGGER contact_phones_updated AFTER UPDATE ON contact_phones
    REFERENCING NEW TABLE AS changed_new OLD TABLE AS changed_old
    FOR EACH STATEMENT EXECUTE FUNCTION cp_contact_arrays_from_rows();
CREATE TRIGGER contact_phones_deleted AFTER DELETE ON contact_phones
    REFERENCING OLD TABLE AS changed_old
    FOR EACH STATEMENT EXECUTE FUNCTION cp_contact_arrays_from_deleted();

-- An opt-out names a number, not a contact: every contact of the firm with that number.
CREATE FUNCTION cp_contact_arrays_from_opt_outs()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    touched record;
BEGIN
    FOR touched IN
        SELECT p.firm_id, array_agg(DISTINCT p.contact_id) AS ids
          FROM changed_numbers n
          JOIN contact_phones p ON p.firm_id = n.firm_id AND p.phone = n.phone_number
         GROUP BY p.firm_id
    LOOP
        PERFORM cp_refresh_contact_arrays(touched.firm_id, touched.ids);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER sms_opt_outs_inserted AFTER INSERT ON sms_opt_outs
    REFERENCING NEW TABLE AS changed_numbers
    FOR EACH STATEMENT EXECUTE FUNCTION cp_contact_arrays_from_opt_outs();
CREATE TRIGGER sms_opt_outs_deleted AFTER DELETE ON sms_opt_outs
    REFERENCING OLD TABLE AS changed_numbers
    FOR EACH STATEMENT EXECUTE FUNCTION cp_contact_arrays_from_opt_outs();

UPDATE contacts c SET
    emails = ARRAY(SELECT e.email FROM contact_emails e
                    WHERE e.firm_id = c.firm_id AND e.contact_id = c.id ORDER BY e.position, e.email),
    phones = ARRAY(SELECT p.phone FROM contact_phones p
                    WHERE p.firm_id = c.firm_id AND p.contact_id = c.id ORDER BY p.position, p.phone),
    sms_opted_out = ARRAY(SELECT o.phone_number FROM sms_opt_outs o
                            JOIN contact_phones p ON p.firm_id = o.firm_id AND p.phone = o.phone_number
                           WHERE p.firm_id = c.firm_id AND p.contact_id = c.id ORDER BY p.position, p.phone);

DROP FUNCTION cp_contact_emails(uuid, uuid);
DROP FUNCTION cp_contact_phones(uuid, uuid);
DROP FUNCTION cp_contact_sms_opt_outs(uuid, uuid);
