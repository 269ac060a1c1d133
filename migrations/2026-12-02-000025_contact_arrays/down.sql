DROP TRIGGER sms_opt_outs_deleted ON sms_opt_outs;
DROP TRIGGER sms_opt_outs_inserted ON sms_opt_outs;
DROP TRIGGER contact_phones_deleted ON contact_phones;
DROP TRIGGER contact_phones_updated ON contact_phones;
DROP TRIGGER contact_phones_inserted ON contact_phones;
DROP TRIGGER contact_emails_deleted ON contact_emails;
DROP TRIGGER contact_emails_updated ON contact_emails;
DROP TRIGGER contact_emails_inserted ON contact_emails;
DROP FUNCTION cp_contact_arrays_from_opt_outs();
DROP FUNCTION cp_contact_arrays_from_deleted();
DROP FUNCTION cp_contact_arrays_from_inserted();
DROP FUNCTION cp_contact_arrays_from_rows();
DROP FUNCTION cp_refresh_contact_arrays(uuid, uuid[]);
ALTER TABLE contacts DROP COLUMN emails, DROP COLUMN phones, DROP COLUMN sms_opted_out;

CREATE FUNCTION cp_contact_emails(firm uuid, contact uuid)
RETURNS text[]
LANGUAGE sql STABLE AS $$
    SELECT ARRAY(SELECT e.email FROM contact_emails e
                  WHERE e.firm_id = firm AND e.contact_id = contact ORDER BY e.position)
$$;

CREATE FUNCTION cp_contact_phones(firm uuid, contact uuid)
RETURNS text[]
LANGUAGE sql STABLE AS $$
    SELECT ARRAY(SELECT p.phone FROM contact_phones p
                  WHERE p.firm_id = firm AND p.contact_id = contact ORDER BY p.position)
$$;

CREATE FUNCTION cp_contact_sms_opt_outs(firm uuid, contact uuid)
RETURNS text[]
LANGUAGE sql STABLE AS $$
    SELECT ARRAY(SELECT o.phone_number FROM sms_opt_outs o
                   JOIN contact_phones p ON p.firm_id = o.firm_id AND p.phone = o.phone_number
                  WHERE o.firm_id = firm AND p.contact_id = contact
                  ORDER BY p.position)
$$;
