DROP TABLE sla_clocks;
