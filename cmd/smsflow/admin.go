package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/smsflow/smsflow/internal/identity/iam"
	"github.com/smsflow/smsflow/internal/ptr"
	"github.com/smsflow/smsflow/internal/store"
)

// roleHelp describes the --role flags.
const roleHelp = "role: admin (all, and the Temporal UI), operator (every SMS operation), viewer (reads, no secrets), " +
	"agent (registers one source and makes its agent calls)"

// adminCmd manages tenants directly in the configured database; it works
// whether or not a server runs (servers pick changes up within
// --auth-cache-ttl).
func (e *env) adminCmd() *cobra.Command {
	admin := &cobra.Command{
		Use:   "admin",
		Short: "Manage tenants: domains, projects, users, AK/SKs and tokens",
		Long: `admin works on the configured database (--db-dsn / --data-dir) directly, whether or
not a server is running. Secrets (generated passwords, SKs) are printed once.`,
	}
	config := admin.PersistentFlags()
	addConfigFlagsTo(config)
	var asJSON bool
	admin.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")

	// run opens the app for one admin command.
	run := func(fn func(cmd *cobra.Command, a *app, args []string) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			cfg, err := e.load(cmd.Flags())
			if err != nil {
				return err
			}
			a, err := e.open(cmd.Context(), cfg, newLogger(cfg, io.Discard))
			if err != nil {
				return err
			}
			defer a.close()
			return fn(cmd, a, args)
		}
	}
	show := func(v any, header []string, rows [][]string) error {
		if asJSON {
			enc := json.NewEncoder(e.out)
			enc.SetIndent("", "  ")
			return enc.Encode(v)
		}
		tw := tabwriter.NewWriter(e.out, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, strings.Join(header, "\t"))
		for _, r := range rows {
			fmt.Fprintln(tw, strings.Join(r, "\t"))
		}
		return tw.Flush()
	}
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }

	// ---- domain ----
	domain := &cobra.Command{Use: "domain", Short: "Domains (accounts)"}
	domain.AddCommand(&cobra.Command{
		Use: "create NAME", Short: "Create a domain", Args: cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, a *app, args []string) error {
			d, err := a.iam.CreateDomain(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return show(map[string]string{"id": d.ID, "name": d.Name}, []string{"ID", "NAME"}, [][]string{{d.ID, d.Name}})
		}),
	}, &cobra.Command{
		Use: "list", Short: "List domains", Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, a *app, _ []string) error {
			ds, err := a.store.Domains(cmd.Context())
			if err != nil {
				return err
			}
			rows := make([][]string, len(ds))
			for i, d := range ds {
				rows[i] = []string{d.ID, d.Name, fmt.Sprint(d.Enabled), ts(d.CreatedAt)}
			}
			return show(ds, []string{"ID", "NAME", "ENABLED", "CREATED"}, rows)
		}),
	})

	// ---- project ----
	var domainFlag, projectID string
	project := &cobra.Command{Use: "project", Short: "IAM projects of a domain (what X-Project-Id names)"}
	pCreate := &cobra.Command{
		Use: "create NAME", Short: "Create a project in --domain", Args: cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, a *app, args []string) error {
			p, err := a.iam.CreateProject(cmd.Context(), domainFlag, args[0], projectID)
			if err != nil {
				return err
			}
			return show(map[string]string{"id": p.ID, "name": p.Name, "domain_id": p.DomainID},
				[]string{"ID", "NAME", "DOMAIN"}, [][]string{{p.ID, p.Name, p.DomainID}})
		}),
	}
	pCreate.Flags().StringVar(&projectID, "id", "", "project id (default: generated, 32 hex characters)")
	pList := &cobra.Command{
		Use: "list", Short: "List the projects of --domain", Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, a *app, _ []string) error {
			d, err := a.store.Domain(cmd.Context(), domainFlag)
			if err != nil {
				return fmt.Errorf("domain %q: %w", domainFlag, err)
			}
			ps, err := a.store.Projects(cmd.Context(), d.ID)
			if err != nil {
				return err
			}
			rows := make([][]string, len(ps))
			for i, p := range ps {
				rows[i] = []string{p.ID, p.Name, ts(p.CreatedAt)}
			}
			return show(ps, []string{"ID", "NAME", "CREATED"}, rows)
		}),
	}
	project.AddCommand(pCreate, pList)

	// ---- user ----
	var password, roleFlag string
	var passwordStdin bool
	user := &cobra.Command{Use: "user", Short: "Users of a domain"}
	uCreate := &cobra.Command{
		Use: "create NAME", Short: "Create a user in --domain (password generated unless given)", Args: cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, a *app, args []string) error {
			pw := password
			if passwordStdin {
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && !errors.Is(err, io.EOF) {
					return fmt.Errorf("read password: %w", err)
				}
				pw = strings.TrimRight(line, "\r\n")
			}
			role, err := iam.ParseRole(roleFlag)
			if err != nil {
				return err
			}
			u, pw, err := a.iam.CreateUserRole(cmd.Context(), domainFlag, args[0], pw, role)
			if err != nil {
				return err
			}
			return show(map[string]string{"id": u.ID, "name": u.Name, "domain_id": u.DomainID, "role": u.Role, "password": pw},
				[]string{"ID", "NAME", "ROLE", "PASSWORD (shown once)"}, [][]string{{u.ID, u.Name, u.Role, pw}})
		}),
	}
	uCreate.Flags().StringVar(&password, "password", "", "password (default: generated and printed once)")
	uCreate.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input")
	uCreate.Flags().StringVar(&roleFlag, "role", string(iam.RoleOperator), roleHelp)
	uList := &cobra.Command{
		Use: "list", Short: "List the users of --domain", Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, a *app, _ []string) error {
			d, err := a.store.Domain(cmd.Context(), domainFlag)
			if err != nil {
				return fmt.Errorf("domain %q: %w", domainFlag, err)
			}
			us, err := a.store.Users(cmd.Context(), d.ID)
			if err != nil {
				return err
			}
			type row struct {
				ID, Name, Role string
				Enabled        bool
				Created        time.Time
			}
			out := make([]row, len(us))
			rows := make([][]string, len(us))
			for i, u := range us {
				out[i] = row{u.ID, u.Name, u.Role, u.Enabled, u.CreatedAt}
				rows[i] = []string{u.ID, u.Name, u.Role, fmt.Sprint(u.Enabled), ts(u.CreatedAt)}
			}
			return show(out, []string{"ID", "NAME", "ROLE", "ENABLED", "CREATED"}, rows)
		}),
	}
	setEnabled := func(enabled bool) func(cmd *cobra.Command, a *app, args []string) error {
		return func(cmd *cobra.Command, a *app, args []string) error {
			if err := a.iam.SetUserEnabled(cmd.Context(), domainFlag, args[0], enabled); err != nil {
				return err
			}
			fmt.Fprintf(e.out, "user %s enabled=%v\n", args[0], enabled)
			return nil
		}
	}
	uDisable := &cobra.Command{Use: "disable NAME", Short: "Disable a user (its tokens are revoked; its AK/SKs stop working)",
		Args: cobra.ExactArgs(1), RunE: run(setEnabled(false))}
	uEnable := &cobra.Command{Use: "enable NAME", Short: "Re-enable a user", Args: cobra.ExactArgs(1), RunE: run(setEnabled(true))}
	var setRole string
	uSetRole := &cobra.Command{
		Use: "set-role NAME", Short: "Change a user's role (its keys are capped by it)", Args: cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, a *app, args []string) error {
			role, err := iam.ParseRole(setRole)
			if err != nil {
				return err
			}
			if err := a.iam.SetUserRole(cmd.Context(), domainFlag, args[0], role); err != nil {
				return err
			}
			fmt.Fprintf(e.out, "user %s role=%s\n", args[0], role)
			return nil
		}),
	}
	uSetRole.Flags().StringVar(&setRole, "role", "", roleHelp+" (required)")
	_ = uSetRole.MarkFlagRequired("role")
	user.AddCommand(uCreate, uList, uDisable, uEnable, uSetRole)

	// ---- aksk ----
	var userFlag, description, keyRole string
	aksk := &cobra.Command{Use: "aksk", Short: "Access keys (AK/SK) for request signing"}
	kCreate := &cobra.Command{
		Use: "create", Short: "Create an AK/SK for --user of --domain; the SK is printed once", Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, a *app, _ []string) error {
			var role iam.Role
			if keyRole != "" {
				r, err := iam.ParseRole(keyRole)
				if err != nil {
					return err
				}
				role = r
			}
			k, err := a.iam.CreateAccessKeyRole(cmd.Context(), domainFlag, userFlag, description, role)
			if err != nil {
				return err
			}
			return show(map[string]string{"ak": k.AK, "sk": k.SK, "domain_id": k.DomainID, "user_id": k.UserID, "role": string(k.Role)},
				[]string{"AK", "SK (shown once)", "ROLE"}, [][]string{{k.AK, k.SK, string(k.Role)}})
		}),
	}
	kCreate.Flags().StringVar(&userFlag, "user", "", "user name (required)")
	kCreate.Flags().StringVar(&description, "description", "", "what the key is for")
	kCreate.Flags().StringVar(&keyRole, "role", "", roleHelp+"; default: the user's. agent: for one source server's sms-agent")
	_ = kCreate.MarkFlagRequired("user")
	kList := &cobra.Command{
		Use: "list", Short: "List the AKs of --domain (never the SKs)", Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, a *app, _ []string) error {
			d, err := a.store.Domain(cmd.Context(), domainFlag)
			if err != nil {
				return fmt.Errorf("domain %q: %w", domainFlag, err)
			}
			ks, err := a.store.AccessKeys(cmd.Context(), d.ID)
			if err != nil {
				return err
			}
			type row struct {
				AK, UserID, Description, Role string
				SourceID                      *string `json:",omitempty"`
				Created                       time.Time
				Revoked                       *time.Time `json:",omitempty"`
			}
			out := make([]row, len(ks))
			rows := make([][]string, len(ks))
			for i, k := range ks {
				out[i] = row{k.AK, k.UserID, k.Description, k.Role, k.SourceID, k.CreatedAt, k.RevokedAt}
				state := "active"
				if k.RevokedAt != nil {
					state = "revoked " + ts(*k.RevokedAt)
				}
				rows[i] = []string{k.AK, k.UserID, k.Role, ptr.Deref(k.SourceID), k.Description, ts(k.CreatedAt), state}
			}
			return show(out, []string{"AK", "USER", "ROLE", "SOURCE", "DESCRIPTION", "CREATED", "STATE"}, rows)
		}),
	}
	kRevoke := &cobra.Command{
		Use: "revoke AK", Short: "Revoke an AK of --domain", Args: cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, a *app, args []string) error {
			if err := a.iam.RevokeAccessKey(cmd.Context(), domainFlag, args[0]); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("no active access key %s in domain %s", args[0], domainFlag)
				}
				return err
			}
			fmt.Fprintf(e.out, "access key %s revoked\n", args[0])
			return nil
		}),
	}
	aksk.AddCommand(kCreate, kList, kRevoke)

	// ---- token ----
	token := &cobra.Command{Use: "token", Short: "X-Auth-Token tokens"}
	tRevoke := &cobra.Command{
		Use: "revoke", Short: "Revoke every live token of --user in --domain", Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, a *app, _ []string) error {
			n, err := a.iam.RevokeTokens(cmd.Context(), domainFlag, userFlag)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.out, "%d tokens revoked\n", n)
			return nil
		}),
	}
	tRevoke.Flags().StringVar(&userFlag, "user", "", "user name (required)")
	_ = tRevoke.MarkFlagRequired("user")
	token.AddCommand(tRevoke)

	for _, c := range []*cobra.Command{project, user, aksk, token} {
		c.PersistentFlags().StringVar(&domainFlag, "domain", "", "domain name or id (required)")
		_ = c.MarkPersistentFlagRequired("domain")
	}
	admin.AddCommand(domain, project, user, aksk, token)
	return admin
}
