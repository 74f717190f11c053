"""What the logs say is relevant: the click model (``click_model``); judgments and the review queue build on it."""
