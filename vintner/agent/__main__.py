"""``python -m vintner.agent`` runs the agent command."""

from vintner.agent.cli import agent_command

if __name__ == "__main__":
    agent_command(prog_name="vintner agent")
