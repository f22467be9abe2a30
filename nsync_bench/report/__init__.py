"""Reports: from finished runs in MLflow to tables, statistics, plots and image grids (`report.build`)."""
