DROP TABLE forecast_adjustments;
DROP TABLE quotas;
