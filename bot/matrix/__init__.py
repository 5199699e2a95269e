"""Everything that talks Matrix. The only package of the bot that imports matrix-nio."""
