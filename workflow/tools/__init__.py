"""Tools a workflow can use: web search backends, the scraper, custom HTTP tools."""
