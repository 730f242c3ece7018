DROP TABLE opportunity_history;
DROP TABLE opportunities;
DROP TABLE pipeline_stages;
DROP TABLE pipelines;
