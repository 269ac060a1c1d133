DROP TABLE prospects;
DROP TABLE leads;
