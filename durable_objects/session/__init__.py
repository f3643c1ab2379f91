"""The parts of `durable_objects.conversation_session.ConversationSession`, one idea per module."""
