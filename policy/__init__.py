"""The webapp policy pack (run by `pulumi preview --policy-pack policy`)."""
