"""The report's sections, one module each, in the order report/html.py assembles them: results,
tradeoffs, (interactive views,) generation or forgetting, pareto, data_efficiency, rank_sweep, scenarios,
scores, provenance. Each writes into a report.page.Page; none reads the store."""
