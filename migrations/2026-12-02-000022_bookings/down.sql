DROP TABLE calendar_busy;
DROP TABLE bookings;
DROP FUNCTION cp_booking_link_firm(text);
DROP TABLE booking_links;
DROP TABLE availability_schedules;
