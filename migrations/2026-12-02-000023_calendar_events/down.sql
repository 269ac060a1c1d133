DROP TABLE calendar_feeds;
ALTER TABLE calendar_busy DROP CONSTRAINT calendar_busy_event_fkey;
ALTER TABLE calendar_busy DROP COLUMN event_id;
DROP TABLE calendar_events;
