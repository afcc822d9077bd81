"""The usage dashboard: the organization overview, project / key drill-downs and charts
(overview.py, charts.py), the request log and exports (request_log.py), over the usage
app's reports (usage/reports.py) and the date range of ranges.py."""
