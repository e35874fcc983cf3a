"""Stage 5, results: rows, reports, plots, paper tables, submissions and the leaderboard."""
