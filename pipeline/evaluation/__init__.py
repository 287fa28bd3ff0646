"""Full-ranking metrics: shared by validation in training and by the evaluate stage."""
