"""A throwaway Synapse and scripted E2EE people, shared by ``larmkedja demo`` and the tests."""
