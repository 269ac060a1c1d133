DROP TABLE business_calendars;
