//! A folder tree listed one page of one folder's children at a time, resumable from a cursor
//! string: what Google Drive and OneDrive share, since neither lists a whole prefix at once the
//! way S3 does.

use serde::{Deserialize, Serialize};

use super::{
    BackendKind, Checksum, ErrorKind, ListPage, ListedFolder, ListedObject, Operation, RemotePath,
    StorageError,
};

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct FolderWalk {
    /// The folders still to list, each as the provider addresses it (an id, a path) and its
    /// path under the backend's folder; the first is the one being listed.
    pending: Vec<(String, String)>,
    /// The provider's cursor within the first folder's children.
    page: Option<String>,
    #[serde(skip)]
    objects: Vec<ListedObject>,
    #[serde(skip)]
    folders: Vec<ListedFolder>,
}

impl FolderWalk {
    /// Where the walk stands: from `cursor` (a previous [`ListPage::next`]), or at the top folder,
    /// which the provider addresses as `root`.
    pub fn resume(
        service: BackendKind,
        cursor: Option<&str>,
        root: &str,
    ) -> Result<FolderWalk, StorageError> {
        match cursor {
            Some(text) => serde_json::from_str(text).map_err(|_| {
                StorageError::new(
                    service,
                    Operation::List,
                    ErrorKind::Other,
                    root,
                    "the listing cannot go on from where it stopped; scan again",
                )
            }),
            None => Ok(FolderWalk {
                pending: vec![(root.to_owned(), String::new())],
                page: None,
                objects: Vec::new(),
                folders: Vec::new(),
            }),
        }
    }

    /// The folder to list now: how the provider addresses it, and its path; `None` when done.
    pub fn folder(&self) -> Option<(String, String)> {
        self.pending.first().cloned()
    }

    /// The provider's cursor of the next page of this folder's children, if it is part way.
    pub fn page(&self) -> Option<&str> {
        self.page.as_deref()
    }

    /// The path under the backend's folder of the child `name` of this folder.
    pub fn path_of(&self, name: &str) -> String {
        match self.pending.first() {
            Some((_, path)) if !path.is_empty() => format!("{path}/{name}"),
            _ => name.to_owned(),
        }
    }

    /// A subfolder of this folder (the provider's `id` of it), to be listed later.
    pub fn subfolder(&mut self, address: String, id: String, name: &str) {
        let path = self.path_of(name);
        self.folders.push(ListedFolder {
            id,
            path: path.clone(),
        });
        self.pending.push((address, path));
    }

    /// A file of this folder (left out when its name is not a remote path Offload can address).
    pub fn file(
        &mut self,
        id: String,
        name: &str,
        size: u64,
        tag: String,
        checksum: Option<Checksum>,
    ) {
        if let Some(path) = RemotePath::exact(&self.path_of(name)) {
            self.objects.push(ListedObject {
                path,
                size,
                tag,
                id: Some(id),
                checksum,
            });
        }
    }

    /// The page's files; `more` is the provider's cursor when this folder has more children.
    pub fn finish(mut self, more: Option<String>) -> ListPage {
        let objects = std::mem::take(&mut self.objects);
        let folders = std::mem::take(&mut self.folders);
        self.page = more;
        if self.page.is_none() && !self.pending.is_empty() {
            self.pending.remove(0);
        }
        let next = if self.pending.is_empty() {
            None
        } else {
            serde_json::to_string(&self).ok()
        };
        ListPage {
            objects,
            folders,
            records: Vec::new(),
            next,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_walk_goes_through_every_page_of_every_folder_and_resumes_from_its_cursor() {
        let mut walk = FolderWalk::resume(BackendKind::Onedrive, None, "root").unwrap();
        assert_eq!(walk.folder(), Some(("root".into(), String::new())));
        walk.subfolder("f1".into(), "id-f1".into(), "Show");
        walk.file("id-1".into(), "Film.mkv", 3, "t1".into(), None);
        walk.file("id-2".into(), "bad//name.mkv", 1, "t2".into(), None);
        let page = walk.finish(Some("p2".into()));
        assert_eq!(
            page.objects.len(),
            1,
            "a name Offload cannot address is left out"
        );
        assert_eq!(
            page.folders,
            vec![ListedFolder {
                id: "id-f1".into(),
                path: "Show".into()
            }]
        );

        // The second page of the top folder, then the subfolder, then done.
        let walk = FolderWalk::resume(BackendKind::Onedrive, page.next.as_deref(), "root").unwrap();
        assert_eq!(
            (walk.folder(), walk.page()),
            (Some(("root".into(), String::new())), Some("p2"))
        );
        let page = walk.finish(None);
        let mut walk =
            FolderWalk::resume(BackendKind::Onedrive, page.next.as_deref(), "root").unwrap();
        assert_eq!(
            (walk.folder(), walk.page()),
            (Some(("f1".into(), "Show".into())), None)
        );
        walk.file("id-3".into(), "Show.S01E01.mkv", 5, "t3".into(), None);
        let page = walk.finish(None);
        assert_eq!(page.objects[0].path.as_str(), "Show/Show.S01E01.mkv");
        assert_eq!(page.next, None);

        let broken = FolderWalk::resume(BackendKind::Onedrive, Some("{"), "root").unwrap_err();
        assert!(broken.message.contains("scan again"), "{broken}");
    }
}
