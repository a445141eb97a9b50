package sms

// Command is the name of a command the service queues for a source's agent
// (GET /v3/sources/{id}/command, §4.3).
type Command string

// Agent commands. START, STOP, DELETE, SYNC, UPLOAD_LOG and RSET_LOG_ACL are
// the spec's; SPEED_LIMIT and NETWORK_CHECK are smsflow's extensions.
const (
	CmdStart        Command = "START"
	CmdStop         Command = "STOP"
	CmdDelete       Command = "DELETE"
	CmdSync         Command = "SYNC"
	CmdUploadLog    Command = "UPLOAD_LOG"
	CmdResetLogACL  Command = "RSET_LOG_ACL" // the spec's spelling
	CmdSpeedLimit   Command = "SPEED_LIMIT"
	CmdNetworkCheck Command = "NETWORK_CHECK"
)

// Commands lists every command name.
var Commands = []Command{CmdStart, CmdStop, CmdDelete, CmdSync, CmdUploadLog, CmdResetLogACL, CmdSpeedLimit, CmdNetworkCheck}

// Valid tells whether c is one of Commands.
func (c Command) Valid() bool { return contains(Commands, c) }

// Copies tells whether c makes the agent copy data (a full copy or a sync pass).
func (c Command) Copies() bool { return c == CmdStart || c == CmdSync }

// CommandResult is the outcome an agent reports for a command.
type CommandResult string

// Command results.
const (
	ResultSuccess CommandResult = "success"
	ResultFail    CommandResult = "fail"
)

// Valid tells whether r is ResultSuccess or ResultFail.
func (r CommandResult) Valid() bool { return r == ResultSuccess || r == ResultFail }
