"""Study reports: tables, decisions, figures and report.md of sweeps, searches and claims."""
