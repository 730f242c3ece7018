//! First start: create an administrator when the database has no user.

use crate::access::Principal;
use crate::app::App;
use crate::error::Result;
use crate::identity::service::{self, NewUser};

/// Creates the first admin from `admin-email` / `admin-password`, or with a
/// generated password printed once to the log.
pub async fn ensure_admin(app: &App) -> Result<()> {
    let count = {
        let mut c = app.db.conn().await?;
        crate::identity::repo::count_users(&mut c.conn()).await?
    };
    if count > 0 {
        return Ok(());
    }
    let (password, generated) = match &app.config.admin_password {
        Some(p) => (p.clone(), false),
        None => (crate::identity::auth::generate_password(), true),
    };
    let created = service::create_user(
        app,
        &Principal::System,
        NewUser {
            email: app.config.admin_email.clone(),
            display_name: "Administrator".into(),
            password: Some(password.clone()),
            roles: vec!["admin".into()],
            team_id: None,
        },
    )
    .await;
    match created {
        Ok(user) if generated => {
            tracing::warn!(
                email = %user.email,
                password = %password,
                "created the first admin with a generated password; it is shown only this once (to set a new one: crm user set-password --email EMAIL)"
            );
        }
        Ok(user) => tracing::info!(email = %user.email, "created the first admin"),
        // Another replica created it at the same moment.
        Err(crate::error::Error::Conflict(_)) => {}
        Err(e) => return Err(e),
    }
    Ok(())
}
