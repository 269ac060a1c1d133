DROP TABLE proposal_versions;
DROP TABLE proposals;
