"""What every study shares around its analysis: the results folder and how it is written."""
