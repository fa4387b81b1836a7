# SSH is not how anyone reaches these instances (Session Manager is), but the daemon, if present,
# must not be the weak point.
only_if('sshd is installed') { file('/etc/ssh/sshd_config').exist? }

control 'baseline-ssh-01' do
  impact 1.0
  title 'Root cannot log in over SSH'
  describe sshd_config do
    its('PermitRootLogin') { should cmp 'no' }
  end
end

control 'baseline-ssh-02' do
  impact 1.0
  title 'SSH accepts keys only: no passwords, no empty passwords'
  describe sshd_config do
    its('PasswordAuthentication') { should cmp 'no' }
    its('PermitEmptyPasswords') { should cmp 'no' }
    its('KbdInteractiveAuthentication') { should_not cmp 'yes' }
  end
end

control 'baseline-ssh-03' do
  impact 0.5
  title 'SSH forwards no X11 and limits authentication attempts'
  describe sshd_config do
    its('X11Forwarding') { should cmp 'no' }
    its('MaxAuthTries') { should cmp <= 4 }
  end
end
