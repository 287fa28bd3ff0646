"""Data made, not ingested: the ID-learnable synthetic set, a full-size H&M folder, the H&M sample's cut, an Amazon category."""
