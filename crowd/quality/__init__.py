"""Quality control: gold scoring, reliability, review verdicts, restrictions, QC rules, skills."""
